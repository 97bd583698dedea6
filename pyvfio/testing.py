"""pytest plugin of pyvfio (entry point ``pytest11``): fixtures that give a ready fake host."""
