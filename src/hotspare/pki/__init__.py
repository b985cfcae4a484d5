"""The site's own certificate authority: one CA, certificates for etcd members, nodes and
operators (docs/site-config.md, "Site PKI"; docs/design.md decision 12)."""
