import streamlit.logger

# AppTest runs scripts "bare": Streamlit logs a harmless warning for every element. Keep test output readable.
streamlit.logger.set_log_level("error")
