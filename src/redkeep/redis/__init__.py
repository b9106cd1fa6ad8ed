"""Redis transports behind one client interface."""
