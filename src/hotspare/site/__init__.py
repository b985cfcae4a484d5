"""The site: its configuration model, licences, allotment and eligibility (who is protected).

Modules: `model` (site.toml), `load` (reading it and its files), `keys` and `licences` (signed
licence files), `pool` (what valid licences add up to), `allotment` (the pool divided among
spares), `eligibility` (the one place the protection rules live), `report` (the protection report).
"""
