"""Data: the image sets a run embeds (COCO, the generated sample, any folder), how one image is decoded,
and fetching COCO."""
