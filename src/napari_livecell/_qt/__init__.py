"""Every widget of the plugin and its worker-thread side; the only place that imports Qt."""
