"""What services and selectors raise for a request they refuse; the edges (views, the
consumer) turn each into an answer: 404, 409 or a `conflict` frame, 400 or `bad_request`."""


class NotFound(Exception):
    """The object does not exist or is not the user's; the caller answers 404."""


class Conflict(Exception):
    """The change is not allowed in the object's current state."""


class Invalid(Exception):
    """The request is malformed or breaks a rule; nothing was changed."""
