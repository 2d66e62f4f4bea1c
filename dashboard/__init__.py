"""What the Streamlit pages share: handles, the generated config form, widgets, access, the live feed."""
