"""Coordination of a site's nodes through etcd.

`etcd_adapter.Coordinator` is the only code that talks to etcd; `models` and `errors` carry its
results and failures without any etcd client type; `etcd_process` runs local members for
`hotspare demo` and the tests. Nothing is re-exported here so that importing the value types does
not import the etcd client. See docs/coordination.md.
"""
