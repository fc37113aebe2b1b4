"""What both planes share: the only data-plane code the control plane imports (a test
enforces it, in both directions), so these rules hold identically on both sides.

- `validate`: the snapshot's consistency rules and schema version, run by the control
  plane before publishing and by every proxy before applying;
- `tokens`: the bearer-token format (prefix, base62 body, checksum) and its hash;
- `private_files`: the one way either plane writes and reads a secret file;
- `addresses`: which addresses are public, which listen addresses are loopback;
- `limits`: sizes and maxima both planes must agree on;
- `startup` and `hardening`: binding listeners, reading configuration files, and
  keeping secrets out of core dumps.
"""
