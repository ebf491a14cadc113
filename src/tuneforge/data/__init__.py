"""tuneforge.data"""
