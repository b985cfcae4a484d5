"""The site's shared state in etcd: key layout, typed values, one-revision snapshots, operations.

Below `failover` and `api` in the dependency order (it may import `coordination`, `site`,
`config`, never `failover`, `api`, `client`, `node` or `cli`), so both can read and write the site
without importing each other. Nothing outside this package turns a site value into JSON or back.
"""
