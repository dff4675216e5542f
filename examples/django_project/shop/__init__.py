"""The example's one app: orders, Django's post_save beside a parasignal signal."""
