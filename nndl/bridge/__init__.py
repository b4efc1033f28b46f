"""Step 3 of DESIGN.md: what crosses from the student's kernel to the trusted side.

`codec`: values and call results as JSON, arrays as ``.npy`` bytes, never a pickle.
`models`: a student's ``.keras`` file admitted (checked, then loaded safely) as data.
"""
