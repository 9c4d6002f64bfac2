"""Pieces shared by the chunked generative policies: observation encoder, 1-D U-Net, base class."""
