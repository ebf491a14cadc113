"""tuneforge.schemas"""
