"""The door between the two sides: the only thing both the loop and the threads import.

The loop posts typed records through a call's channel; roark's threads take them from the
hand-off queue. Nothing here blocks, and nothing here knows either side's internals.
"""
