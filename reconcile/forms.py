"""Forms shared by the vendor and PSA apps."""

from django import forms


class DeleteConnectionForm(forms.Form):
    """Deleting a connection is confirmed by typing its name, like GitHub's repository delete."""

    name = forms.CharField(label="Type the connection's name to confirm", max_length=200)

    def __init__(self, *args, connection, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = connection.confirm_name
        self.fields["name"].help_text = f"Type “{self.expected}”."

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if name != self.expected:
            raise forms.ValidationError(
                f"That is not the connection's name: type “{self.expected}” exactly."
            )
        return name
