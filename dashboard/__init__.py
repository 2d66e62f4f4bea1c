"""What the Streamlit pages share; nothing below it (``cartpole_core``) imports Streamlit.

- ``page``: what every page runs inside (app.py's navigation, the access gate, the store guard).
- ``handles``: this session's run store, the process's queue runner and live feed.
- ``form``: the Train form generated from the configs' field metadata; ``share``: its share links.
- ``checkpoints``: picking a run's checkpoint and loading its agent (the watch pages).
- ``widgets``: small widgets several pages draw; ``labels``: how runs and user text are written (no Streamlit).
- ``access``: who may use a served lab (the access gate, the endpoint's host and signature checks).
- ``live``: the live view — its snapshots, their JSON endpoint and the browser component that redraws them.
"""
