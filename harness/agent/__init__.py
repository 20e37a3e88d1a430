"""The controller's side of the on-device agent (devices/agent.py): its protocol over any transport."""
