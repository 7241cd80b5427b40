"""A neutral witness (C2SP tlog-witness): cosigns a log's checkpoints, each consistent with the
last it cosigned, and never two roots for one size."""
