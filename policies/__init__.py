"""Policy zoo (one folder per family behind one Policy protocol); filled by later issues."""
