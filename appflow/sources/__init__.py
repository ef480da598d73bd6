"""Where desired state comes from: git repositories, app definitions in them, local folders, the catalog."""
