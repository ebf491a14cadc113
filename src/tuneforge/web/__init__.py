"""tuneforge.web"""
