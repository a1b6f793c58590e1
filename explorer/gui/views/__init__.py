"""The views: the map (mapview + its point rasteriser), Compare, the checkpoint timeline, the
live fine-tune panel and the diagnostics panel. Each view owns its subscriptions to the session
(:class:`~explorer.gui.subscriptions.Subscriptions`) and drops them when it closes."""
