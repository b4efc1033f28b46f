"""Hidden graders, reference implementations and sample submissions for a01_perceptrons_xor."""
