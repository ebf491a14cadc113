"""tuneforge.serving"""
