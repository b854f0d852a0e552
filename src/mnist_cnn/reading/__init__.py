"""Reading digits and numbers from pictures."""
