"""kvstore.integration: adapters that plug the store into inference engines.

    hf: Hugging Face transformers (kvstore.integration.hf; needs PyTorch and
        transformers, which the kvstore package itself does not)

Nothing is imported here, so `import kvstore` never pulls an engine in.
"""
