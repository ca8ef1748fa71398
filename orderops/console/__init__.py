"""`orderops console`: the web inbox where people sign in and decide the orders that wait for them (layer 4)."""
