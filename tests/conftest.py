import logging

# AppTest runs scripts "bare": Streamlit logs a harmless warning for every element. Keep test output readable.
logging.getLogger("streamlit").setLevel(logging.ERROR)
