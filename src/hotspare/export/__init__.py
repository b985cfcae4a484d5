"""Evidence export: one MP4 for a camera's time range, built from what the site serves, and a
manifest signed with the site's export key that lets anyone holding the public key check the clip
(docs/export.md)."""
