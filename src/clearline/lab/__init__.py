"""Running nodes from outside: the two-node pair the demo scene uses, the fault-injecting
proxy, the link benchmark and the soak. Nothing here runs inside a node."""
