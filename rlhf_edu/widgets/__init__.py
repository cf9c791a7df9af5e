"""Interactive explorers for the lessons: plain ipywidgets with matplotlib output.

Each widget is a thin layer over a plain plotting function with arguments (tested on its
own). ``show_*`` draws the plot at the default values first, so a static render or the
notebook test still shows it, then attaches the sliders when a widget front end runs.
"""
