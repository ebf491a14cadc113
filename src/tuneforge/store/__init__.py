"""tuneforge.store"""
