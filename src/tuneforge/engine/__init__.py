"""tuneforge.engine"""
