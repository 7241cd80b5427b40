"""How a side reads what it sees and what it answers: threat, trust, responses."""
