"""``liveaug bench`` sections: each returns a JSON-able dict of measured figures."""
