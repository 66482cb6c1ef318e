"""Word wrapping for the plain-text e-mails the newsletter sends."""


def wrap(text, width):
    """text as a list of lines of at most width characters.

    Words are separated by any whitespace (spaces, tabs, newlines); a line holds as many words as fit, joined by
    single spaces. A word longer than width stands alone on its own line, unbroken. There are no empty lines: text
    with no words gives []. ValueError when width is less than 1.
    """
    if width < 1:
        raise ValueError("width must be at least 1")
    lines = []
    current = ""
    for word in text.split(" "):
        if len(current) + len(word) + 1 > width:
            lines.append(current)
            current = word
        else:
            current = current + " " + word if current else word
    return lines


def fill(text, width):
    """wrap(text, width) joined into one string with newlines."""
    return "\n".join(wrap(text, width))
