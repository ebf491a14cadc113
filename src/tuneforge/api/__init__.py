"""tuneforge.api"""
