"""What both planes share."""
