"""edgekit.deploy: bundles, SD-card flashing with first-boot provisioning, fleet deployment.

One file per role: ``config`` (edgekit.yaml), ``render`` (firmware/ templates), ``bundle``
(deterministic tarball + manifest, safe unpacking), ``image`` (partition tables, FAT files),
``blockdev`` (what a flash target is), ``flash`` (refusals, write, verify), ``fleet`` (ssh /
Ansible). Host side only: what runs on the board (the app's systemd watchdog pings,
:mod:`edgekit.io.sdnotify`) lives with the device code.
"""
