"""Synthetic video world and video I/O.

world.py   the scene model as pure data: objects, actions, texts, splits, sampling of clips and streams
render.py  drawing a sampled video into BGR frames, nuisances included (numpy + OpenCV)
write.py   video files (mp4v .mp4 / MJPG .avi) plus JSON annotations
video.py   reading videos and cameras
__main__   the command line: python -m edge_vljepa.data --help

No module here imports torch.
"""
