# response rule
$saved_path = connection.data.get( "path" );
if( string.startsWith( $saved_path, "/media" ) ) {
   $chosen_node = connection.getNode();
   http.redirect( "http://".$chosen_node.$saved_path );
}
