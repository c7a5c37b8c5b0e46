"""napari widgets: thin magicgui/Qt wiring of the core; every action delegates to it."""
