"""tuneforge.serving: the inference server process of a deployment (`python -m tuneforge.serving --model M …`),
an OpenAI-compatible chat API over the engine's chat model with continuous batching on one KV cache."""
