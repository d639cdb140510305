"""The node agent (``stockade agent run``): the node's pods followed from the identity directory,
their host-side interfaces found, and the sensor, the node CIS benchmark and running-container
scans kept going for them."""
