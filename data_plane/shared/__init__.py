"""What both planes share: the only data-plane code the control plane may import."""
