"""What every backend must do alike, written once: each backend supplies storage primitives.

One concept per module; the backends' packages import these, never one another.
"""
