"""What a model is: its recipe, its variants, its output adapter and where its datasets come from."""
