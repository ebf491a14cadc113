"""tuneforge.service"""
