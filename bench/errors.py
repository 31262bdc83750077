"""The one exception type that reaches users as a one-line message."""


class BenchError(Exception):
    """A problem the user can fix; the CLI prints ``str(err)`` alone, without a traceback.

    Messages name the fix, e.g. "unknown model 'vgg61': choose one of vgg16, resnet50 (conf/model/)".
    """
