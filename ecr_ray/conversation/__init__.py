"""The conversation module: the recommender's turn u_r with `<movie>` slots, filled with the recommender's items."""
