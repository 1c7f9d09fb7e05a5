"""caduceus-lrp: fine-tune Caduceus on regulatory genomics data and explain what it relies on."""
