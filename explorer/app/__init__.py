"""The application layer: the workflow between the engines and the window, free of Qt.

What follows a user's action (reopening a saved session, ...) lives here as plain Python the
GUI calls and a headless test can drive; the window only asks the user and draws.
"""
