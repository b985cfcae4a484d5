"""Codec bitstream helpers shared by the recorder, the store and the camera simulator."""
